import uuid

from django.db import models
from django.utils import timezone

from contracts import users


class Customer(models.Model):
    """A shop customer. Not a Django auth user: those are operators."""

    Status = users.CustomerStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=200)
    password = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # when the customer proved they read `email` (POST /api/users/verify); a new
    # address is unverified again
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # the address this customer had before a change: nobody may register or take
    # it until the new one is verified (its owner may have been locked out)
    previous_email = models.EmailField(max_length=254, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class RefreshToken(models.Model):
    """
    A refresh token issued to a customer, by its id (`jti`). Each refresh
    uses one up and issues the next of the same family (one sign-in);
    presenting a used one again means it was stolen or replayed, and the
    whole family is revoked. A password change, a block or a deletion
    revokes every family of the customer.
    """

    jti = models.CharField(max_length=64, primary_key=True)
    family = models.UUIDField(db_index=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="refresh_tokens")
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"refresh token {self.jti[:8]} of {self.customer_id}"


class AttemptCount(models.Model):
    """
    How many attempts of one kind one subject made in the current window: a
    failed sign-in from an address, for an account from an address, a mail
    a customer asked for (see `contexts.users.limits`). The key is a keyed
    hash of the kind and the subject, so no address or email is kept here;
    rows whose window ended are deleted as new attempts come.
    """

    key = models.CharField(max_length=64, primary_key=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.count} attempt(s) until {self.expires_at:%H:%M:%S}"
