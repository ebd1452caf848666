from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "users"


class UsersConfig(ContextConfig):
    name = "contexts.users"
    label = "users"
    database = ALIAS
    verbose_name = "Users"
