from apcheck.cli import main

raise SystemExit(main())
