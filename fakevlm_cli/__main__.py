from fakevlm_cli.cli import main

main()
