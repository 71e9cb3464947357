//! smtpd.conf language.
