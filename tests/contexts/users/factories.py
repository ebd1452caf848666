import factory
from django.contrib.auth.hashers import make_password

from contexts.users.models import Customer


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    name = factory.Faker("name")
    password = factory.LazyFunction(lambda: make_password("correct horse"))
