"""The tracker: schema and migrations, the plan importers, the people directory and
``record_update``, the one function every reply goes through."""
