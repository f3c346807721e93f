"""What the tests build, one module per kind: tiny networks (``networks``), their checkpoint files
(``checkpoints``), a CPU trainer (``trainer``), synthetic images (``images``), a fake noise GAN
(``fakes``), NIfTI files (``nifti``), tiny CLI configs (``configs``), child processes
(``processes``) and the reference CycleGAN networks (``reference_cyclegan``). The shared fixtures
built on them are in ``tests/conftest.py``."""
