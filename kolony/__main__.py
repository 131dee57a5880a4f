from kolony.console import main

main()
