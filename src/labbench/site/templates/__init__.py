"""The site's Jinja2 templates and stylesheet: package data, listed as a package so setuptools ships the folder."""
