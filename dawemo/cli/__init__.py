"""The ``dawemo`` command: ``main`` parses and dispatches; each group of subcommands has its module."""
