"""CLI subcommands: each module exposes NAME, HELP, add_arguments(parser) and run(args)."""
