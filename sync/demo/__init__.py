"""The guided tour: its context, sample ERP and chapters.

Drives the engine through the same functions as the CLI; imports every layer below the CLI.
"""
