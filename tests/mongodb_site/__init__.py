"""A site all on MongoDB (django-mongodb-backend): models and sessions configured once."""
