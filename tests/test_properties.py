"""Property-based tests (hypothesis) of the parsers and the metric input validator: whatever the
input, the answer is a result or a UserError, never another exception (issue 12)."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from calnas import objectives
from calnas.errors import UserError
from calnas.metrics import binned_errors, calibration_panel, fit_temperature
from calnas.spaces import SSS, TSS
from calnas.tables import table_from_frame
from tests.conftest import make_published_frame

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like what the parsers read, and anything else.
PIECES = ["|", "+", "~", ":", ",", "=", ">=", "<=", ">", "<", "-", "--", " ", "0", "1", "2", "8", "16", "64", "6²", "٣",
          "nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "acc", "ece", "hcs", "beta", "max",
          "min", "nll", "post_", "pre_", "_15", "e5", ".", "nan", "inf", "1" * 30, "\x00", "é"]
ODD_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(PIECES), max_size=14).map("".join),
    st.text(alphabet=string.digits + "²³٣۵-+ ", max_size=12),
)


def result_or_user_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None


# -- architecture strings and indices ------------------------------------------------------------

@FAST
@given(text=ODD_TEXT)
def test_arch_strings(text):
    for space in (TSS, SSS):
        canonical = result_or_user_error(space.parse, text)
        if canonical is not None:
            assert space.parse(canonical) == canonical and 0 <= space.index(canonical) < space.size


@FAST
@given(value=st.one_of(st.integers(), st.integers().map(str), st.booleans(), st.floats(), st.none(),
                       st.integers(0, 40000).map(lambda i: f" {i} ")))
def test_indices(value):
    for space in (TSS, SSS):
        canonical = result_or_user_error(space.parse, value)
        if canonical is not None:
            assert space.index(canonical) == int(str(value).strip())


@FAST
@given(genes=st.lists(st.sampled_from(["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]),
                      min_size=6, max_size=6))
def test_every_valid_tss_string_round_trips(genes):
    text = TSS._from_genes(genes)
    assert TSS.arch(TSS.index(text)) == text


# -- objective and constraint specs ----------------------------------------------------------------

@pytest.fixture(scope="module")
def table():
    return table_from_frame(make_published_frame(TSS, range(30), seed=5), name="t", dataset="cifar10")


@FAST
@given(spec=ODD_TEXT, constraint=st.one_of(st.none(), ODD_TEXT))
def test_objective_and_constraint_specs(table, spec, constraint):
    parsed = result_or_user_error(objectives.parse, spec, table, constraint)
    if parsed is None:
        return
    frame = table.frame
    for objective in parsed.objectives:
        values = objective.values(frame)
        assert values.shape == (len(frame),)
        if objective.name.startswith("hcs"):  # HCS of an accuracy and an error in [0, 1] lies in [0, 1]
            finite = values[np.isfinite(values)]
            assert ((finite >= 0) & (finite <= 1)).all()
    for constraint_ in parsed.constraints:
        assert math.isfinite(constraint_.bound)


@FAST
@given(names=st.lists(st.sampled_from(["acc", "ece", "hcs", "nll", "post_ece_15", "ksce", "mmce", "brier", "params",
                                       "max:acc", "min:ece", "hcs:beta=2", "hcs:ece=nll", "hcs:ece=post_mce",
                                       "ece_0", "ece_99999", "cwce_em_5"]), min_size=1, max_size=4),
       op=st.sampled_from([">=", "<=", ">", "<", "=>", "=", "!="]),
       bound=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["-0.1", "90", "1e400", "x"])))
def test_specs_built_from_valid_names(table, names, op, bound):
    result_or_user_error(objectives.parse, ",".join(names), table, f"{names[0]}{op}{bound}")


# -- config files --------------------------------------------------------------------------------

YAML_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                        st.lists(st.one_of(st.integers(), st.text(max_size=8)), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@FAST
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")),
                         st.dictionaries(st.sampled_from(["budget", "seed", "objective", "constraint", "searcher",
                                                          "benchmark", "out", "workers", "storage", "dedupe",
                                                          "no_plot", "json", "live", "epochs", "cache", "devices",
                                                          "study_name", "nonsense", 5]),
                                         YAML_VALUES, max_size=4).map(lambda d: _yaml(d))))
def test_config_files(tmp_path_factory, content):
    from calnas.commands.search import _read_config

    path = tmp_path_factory.mktemp("config") / "c.yaml"
    path.write_bytes(content)
    config = result_or_user_error(_read_config, path)
    assert config is None or isinstance(config, dict)


def _yaml(mapping) -> bytes:
    import yaml

    return yaml.safe_dump(mapping, allow_unicode=True).encode("utf-8")


# -- the metric input validator ----------------------------------------------------------------------

DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex128])
ELEMENTS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-300, 300))


def _arrays(dtype, shape):
    if np.dtype(dtype).kind == "c":
        return hnp.arrays(dtype, shape, elements=st.complex_numbers(max_magnitude=10, allow_nan=False))
    if np.dtype(dtype).kind == "f":
        width = 8 * np.dtype(dtype).itemsize
        return hnp.arrays(dtype, shape, elements=st.floats(width=width, allow_nan=True, allow_infinity=True))
    return hnp.arrays(dtype, shape)


@st.composite
def predictions(draw):
    n = draw(st.integers(0, 12))
    k = draw(st.integers(0, 5))
    shape = draw(st.sampled_from([(n, k), (n,), (n, k, 1), ()]))
    matrix = draw(_arrays(draw(DTYPES), shape))
    labels = draw(st.one_of(_arrays(draw(DTYPES), (draw(st.sampled_from([n, n + 1, 0])),)),
                            hnp.arrays(np.int64, (n,), elements=st.integers(-1, max(k, 1))),
                            st.lists(st.integers(0, 3), max_size=12), st.none()))
    return matrix, labels


@st.composite
def plausible_logits(draw):
    n = draw(st.integers(2, 30))
    k = draw(st.integers(2, 6))
    scale = draw(st.sampled_from([1e-300, 1e-3, 1.0, 50.0, 1e100, 1e300]))
    z = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-1, 1))) * scale
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    return z, y


@FAST
@given(data=predictions(), as_logits=st.booleans(), bins=st.one_of(st.just((5, 15)), st.lists(st.integers(-2, 20), max_size=3)),
       temperature=st.one_of(st.none(), st.floats(), st.text(max_size=3)))
def test_panel_inputs(data, as_logits, bins, temperature):
    matrix, labels = data
    kwargs = {"logits": matrix} if as_logits else {}
    if temperature is not None and as_logits:
        kwargs["temperature"] = temperature
    panel = result_or_user_error(calibration_panel, None if as_logits else matrix, labels, bins=bins, **kwargs)
    if panel is not None:
        assert all(isinstance(v, float) for v in panel.values())
    result_or_user_error(binned_errors, matrix, labels, bins)


@FAST
@given(data=plausible_logits(), method=st.sampled_from(["ece_grid", "nll"]), clip=st.sampled_from(["float64", "study"]))
def test_panel_on_extreme_but_valid_logits(data, method, clip):
    z, y = data
    panel = calibration_panel(None, y, logits=z, fit_on_test=True, temperature_method=method, nll_clip=clip)
    for name, value in panel.items():
        assert not math.isnan(value) or name in ("correct_confidence", "incorrect_confidence", "AUROC"), name
    assert 0 < panel["temperature"] and 0 <= panel["pre_ECE_15"] <= 1 and 0 <= panel["post_ECE_15"] <= 1
    assert result_or_user_error(fit_temperature, z, y, method) == panel["temperature"]
