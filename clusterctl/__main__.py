from clusterctl.cli import main

raise SystemExit(main())
