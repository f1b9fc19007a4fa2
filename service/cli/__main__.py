"""``python -m service.cli serve``: the same as the ``tbptt-online`` console script."""

from service.cli.main import main

raise SystemExit(main())
