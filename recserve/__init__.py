"""The ``recserve`` console script (subcommands dispatch to training, model_store and service)."""
