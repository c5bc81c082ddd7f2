"""One blueprint per resource; ``api.create_app`` registers them all."""
