"""What every part of gan-init uses: user errors, atomic files, child processes and locks, seeded
random streams, name registries, the built-in assets, pictures and the training-speed options."""
