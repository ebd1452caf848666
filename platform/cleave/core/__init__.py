"""
The foundation of the runtime: the declared settings and their readers (`conf`,
`env`), the contexts registry and the database router, database settings and
prepared statements, the errors every layer raises, the flow ids of a request,
the client's address, the one backoff, the one owner of background threads,
and the declarations a context's contract is written with. Imports nothing
else of `cleave`.
"""
