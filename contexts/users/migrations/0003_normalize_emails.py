"""
Store every customer's address as the rule in `contexts.users.emails` makes
it (case, NFKC, invisible characters dropped), so that sign-in, which
normalises what it is given, finds it.

A row whose address cannot be normalised (it holds control or bidirectional
characters: no sign-in could ever match it) is left as it is; so is a row
whose normalised address another customer already has (a look-alike of
theirs: its mail went to their mailbox all along). Both are listed in the
migration's output for an operator to decide.
"""

from django.db import IntegrityError, migrations, transaction

from contexts.users.emails import UnacceptableEmail, normalize_email


def normalize_existing(apps, schema_editor):
    customer = apps.get_model("users", "Customer")
    # the database being migrated, as the schema editor names it (Django's rule for
    # RunPython), not the one the router would pick for the model
    alias = schema_editor.connection.alias
    rows = list(customer.objects.using(alias).order_by("created_at", "id").values_list("id", "email"))
    taken = {email for _id, email in rows}
    left: list[str] = []
    for pk, email in rows:
        try:
            normalized = normalize_email(email)
        except UnacceptableEmail:
            left.append(f"{pk} (control or bidirectional characters)")
            continue
        if normalized == email:
            continue
        if normalized in taken:
            left.append(f"{pk} (a look-alike of {normalized})")
            continue
        try:
            with transaction.atomic(using=alias):
                customer.objects.using(alias).filter(pk=pk).update(email=normalized)
        except IntegrityError:  # the database's collation finds another row equal to it
            left.append(f"{pk} (a look-alike of another address)")
            continue
        taken.discard(email)
        taken.add(normalized)
    if left:
        print(f"\n  customers whose address was left as it was: {', '.join(left)}")


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0002_customer_lifecycle"),
    ]

    operations = [
        migrations.RunPython(normalize_existing, migrations.RunPython.noop),
    ]
