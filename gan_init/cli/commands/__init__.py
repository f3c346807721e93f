"""The project's own subcommands: each module has ``main(argv) -> int`` (see ``gan_init.cli``)."""
