import MinewatchCommands

Minewatch.main()
