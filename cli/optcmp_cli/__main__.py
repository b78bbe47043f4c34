from optcmp_cli.app import main

main()
