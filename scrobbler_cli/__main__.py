from scrobbler_cli.cli import main

main()
