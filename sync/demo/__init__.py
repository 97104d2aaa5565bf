"""The guided tour (``icsync demo``) and its sample ERP."""
