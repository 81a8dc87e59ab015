"""What several suites use: CLI skeleton, interrupts, CPU and RSS meters, report tables, the
4 KiB cases, curl transfers, a scratch PostgreSQL database and the mixed load. Imports no suite."""
