from mkmedia.cli import main

raise SystemExit(main())
