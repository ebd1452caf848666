"""
Who a request is: customer and service tokens (`tokens`), DRF's
authentication and permission classes (`authentication`, `permissions`), and
the revocations that stop a customer's tokens before they expire.
"""
