from airflow_gitops.cli import main

raise SystemExit(main())
