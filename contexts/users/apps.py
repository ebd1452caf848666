from cleave.contexts import ContextConfig


class UsersConfig(ContextConfig):
    name = "contexts.users"
    label = "users"
    verbose_name = "Users"
