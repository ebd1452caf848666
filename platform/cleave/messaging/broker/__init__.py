"""
The Celery transport over RabbitMQ or Redis: the broker's exchanges and queues
(`topology`), the relay's publisher with confirms (`publisher`), the
transport itself (`transport`), and what a worker does with a message
(`receiver`).
"""
