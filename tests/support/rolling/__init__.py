"""
Two releases of Cleave side by side, for the rolling-upgrade test
(tests/integration/test_rolling_upgrade.py): the same contexts, one release
still on `order.placed` v1 and the next on v2.

- Release 1 is today's code: `contracts` (`order.placed` v1), and consumers
  in analytics and notifications that read v1 (`consumers.py`).
- Release 2 has `order.placed` v2 (`total` and `currency` become
  `amount: {value, currency}`), with a downcaster to v1 in its orders
  contract (`orders_v2.py`), the orders code publishing v2's shape, and its
  consumers reading v2 with an upcaster from v1.

A process picks its release with `DJANGO_SETTINGS_MODULE=tests.support.rolling.settings`
and `CLEAVE_TEST_RELEASE=1|2`; release 2 also names its contracts package
(`CLEAVE_TEST_CONTRACTS_PACKAGE`), a copy of `contracts/` whose orders module
is `orders_v2.py`, locked by `manage.py contracts lock` (the test builds it).
"""
