"""``python -m tbptt_service.cli serve``: the same as the ``tbptt-online`` console script."""

from tbptt_service.cli.main import main

raise SystemExit(main())
