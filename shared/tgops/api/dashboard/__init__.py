"""The admin dashboard: server-rendered pages (Jinja2, a vendored htmx) behind an admin login."""
