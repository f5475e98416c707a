"""The service's domains: one package each, with ``router``, ``schemas``, ``service`` and
``dependencies`` modules. Add one with the ``new-domain NAME`` command."""
