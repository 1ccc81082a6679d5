#!/usr/bin/env python
"""The tiny Django project apnskit.contrib.django is tested in (see ../test_django_project.py)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
