from tl_mcp.sandbox import main

raise SystemExit(main())
