"""The report of the workflow's runs: its tables (:mod:`.tables`) and figures (:mod:`.figures`)."""
