"""What runs in a ClientApp process on a node: the message handlers, the local
client (data, model, training), private state and personalization, and the
export of the personalized model. Never imports the server side, nor
``flwr.serverapp`` (import-linter and a test check it)."""
