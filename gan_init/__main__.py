from gan_init.cli import main

raise SystemExit(main())
