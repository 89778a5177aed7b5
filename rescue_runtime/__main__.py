from rescue_runtime.cli import main

raise SystemExit(main())
