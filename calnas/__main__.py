from calnas.cli import main

main()
