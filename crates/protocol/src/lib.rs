//! Sans-IO SMTP protocol core.
