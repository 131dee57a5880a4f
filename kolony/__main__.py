from kolony.cli import main

main()
