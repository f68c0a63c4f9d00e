from packer.cli.main import main

main()
