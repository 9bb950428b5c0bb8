"""A local FCM HTTP v1 compatible server for the demo, the tests and the benchmarks (`manage.py fakefcm`)."""
