import gzip
import json
import random

import numpy as np
import pandas as pd
import pytest
from nats_bench.api_utils import ArchResults, ResultsCount

import calnas
from calnas.errors import UserError
from calnas.spaces import SSS, TSS
from calnas.tables import load_benchmark, load_nats_bench
from tests.conftest import make_published_frame

BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_embedded_accuracy_tables_are_the_real_numbers():
    table = load_benchmark("nats-tss-cifar10")
    assert len(table) == 15625 and table.covers_space
    assert table.row(BEST_C10)["acc"] == pytest.approx(0.94373333, abs=1e-12)
    assert table.frame["acc"].idxmax() == 6111
    assert load_benchmark("NATS-TSS-CIFAR100").frame["acc"].idxmax() == 9930
    assert load_benchmark("nats-tss-imagenet16-120").frame["acc"].idxmax() == 857
    assert table.frame["iso"].nunique() == 6466


def test_default_benchmark_and_api():
    table = calnas.load_benchmark(None)
    assert table.name in ("digits-tss-curves", "digits-tss", "nats-tss-cifar10")
    frame = table.to_frame()
    assert {"index", "arch", "acc"} <= set(frame.columns)


def test_published_csv_is_read_exactly(tmp_path):
    indices = random.Random(0).sample(range(TSS.size), 40)
    frame = make_published_frame(TSS, indices)
    path = tmp_path / "cifar10_tss.csv"
    frame.sample(frac=1.0, random_state=1).to_csv(path, index=False)  # rows in any order
    table = load_benchmark(str(path))
    assert table.space is TSS and table.dataset == "cifar10" and len(table) == 40
    for _, expected in frame.iterrows():
        row = table.row(int(expected["config"]))
        assert row["arch"] == expected["arch"]
        for col in frame.columns[2:]:
            assert row[col] == expected[col]
    assert "iso" in table.frame.columns  # calnas's own column joined in


def test_column_subset_without_index_and_sss(tmp_path):
    indices = random.Random(2).sample(range(SSS.size), 25)
    frame = make_published_frame(SSS, indices)[["arch", "acc", "pre_ECE_15"]]
    path = tmp_path / "ImageNet_sss.csv.gz"
    frame.to_csv(path, index=False, compression="gzip")
    table = load_benchmark(str(path))
    assert table.space is SSS and table.dataset == "imagenet16-120"
    assert set(table.metric_columns) >= {"acc", "pre_ECE_15"}
    first = frame.iloc[0]
    assert table.row(first["arch"])["pre_ECE_15"] == first["pre_ECE_15"]


def test_data_dir_discovery(tmp_path, monkeypatch):
    make_published_frame(TSS, range(10)).to_csv(tmp_path / "cifar100_tss.csv", index=False)
    monkeypatch.setenv("CALNAS_DATA_DIR", str(tmp_path))
    table = load_benchmark("cifar100_tss")
    assert table.dataset == "cifar100" and len(table) == 10


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("acc,pre_ECE_15\n0.9,0.01\n", "neither an 'arch' nor"),
        ("arch,acc\nresnet50,0.9\n", "cannot tell the search space"),
        ("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|bogus~2|,0.9\n", "unknown operation"),
        ("config,arch,acc\n0,8:8:8:8:8,0.9\n0,8:8:8:8:8,0.8\n", "disagrees|twice"),
        ("config,arch,acc\n0,8:8:8:8:8,93.2\n", "fraction"),
        ("", "cannot read|no rows"),
    ],
)
def test_bad_tables(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=fragment):
        load_benchmark(str(path))


def test_corrupted_gzip_and_missing_file(tmp_path):
    path = tmp_path / "cifar10_tss.csv.gz"
    path.write_bytes(gzip.compress(b"config,arch,acc\n0,x,1\n")[:20])
    with pytest.raises(UserError, match="cannot read"):
        load_benchmark(str(path))
    with pytest.raises(UserError, match="does not exist"):
        load_benchmark(str(tmp_path / "nope.csv"))
    with pytest.raises(UserError, match="unknown benchmark"):
        load_benchmark("nats-tss-cifar11")


def _arch_results(index: int, arch: str, test_acc: float, seeds=(777, 888)) -> dict:
    """One architecture's results built with nats_bench's own classes (values made up for the test)."""
    result = ArchResults(index, arch)
    for dataset, eval_name in (("cifar10", "ori-test"), ("cifar100", "x-test")):
        result.dataset_seed[dataset] = list(seeds)
        for k, seed in enumerate(seeds):
            epochs = 3
            count = ResultsCount(dataset, None, {e: 50.0 for e in range(epochs)}, {e: 1.0 for e in range(epochs)},
                                 params=0.5 + index / 1000, flop=80.0 + index, arch_config={"arch_str": arch},
                                 seed=seed, epochs=epochs, latency=[0.01])
            acc = test_acc + (1.0 if k else -1.0)  # two seeds around the mean
            names = [eval_name] + (["x-valid"] if dataset != "cifar10" else [])
            for name in names:
                count.update_eval({f"{name}@{e}": acc for e in range(epochs)}, {f"{name}@{e}": 0.5 for e in range(epochs)},
                                  {f"{name}@{e}": 1.0 for e in range(epochs)})
            count.update_train_info({e: 60.0 for e in range(epochs)}, {e: 90.0 for e in range(epochs)},
                                    {e: 1.0 for e in range(epochs)}, {e: 2.0 for e in range(epochs)})
            result.all_results[(dataset, seed)] = count
    return result.state_dict()


def test_nats_bench_api_loader_with_in_memory_benchmark():
    archs = [TSS.arch(i) for i in range(5)]
    accs = [80.0, 85.5, 90.25, 70.0, 60.0]
    bench = {
        "meta_archs": archs,
        "arch2infos": {i: {"200": _arch_results(i, a, acc)} for i, (a, acc) in enumerate(zip(archs, accs))},
        "evaluated_indexes": list(range(5)),
    }
    table = load_nats_bench(bench, "tss", "cifar10")
    assert list(table.frame.index) == list(range(5))
    assert table.frame["acc"].tolist() == pytest.approx([a / 100 for a in accs])
    assert table.frame.loc[2, "params"] == pytest.approx(0.502)
    assert table.frame.loc[3, "flops"] == pytest.approx(83.0)
    c100 = load_nats_bench(bench, "tss", "cifar100")
    assert c100.frame["acc"].tolist() == pytest.approx([a / 100 for a in accs])
    with pytest.raises(UserError):
        load_nats_bench(bench, "tss", "mnist")


def test_rows_serialise_to_json():
    row = load_benchmark("nats-tss-cifar10").row(0)
    json.dumps(row)
    assert isinstance(row["acc"], float) and isinstance(row["index"], int)


def test_default_calibration_table_covers_space_with_cost_and_twins():
    table = load_benchmark("digits-tss")
    assert table.covers_space and table.space is TSS and table.dataset == "digits"
    frame = table.frame
    assert frame["evaluated_index"].nunique() == 6466
    # Twins share their class's row: same metrics, evaluated_index = the class representative.
    twins = frame[frame["iso"] == 0]
    assert len(twins) == 8 and (twins["evaluated_index"] == 0).all()
    assert twins["pre_ECE_15"].nunique() == 1 and twins["acc"].nunique() == 1
    # Cost columns are the NATS-Bench network's on CIFAR-10 (the architecture as benchmarked).
    c10 = load_benchmark("nats-tss-cifar10").frame
    assert (frame["params"] == c10["params"]).all() and (frame["flops"] == c10["flops"]).all()
    assert frame["acc"].between(0, 1).all() and frame["pre_ECE_15"].between(0, 1).all()
