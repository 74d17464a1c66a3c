//! Account protection (contract section 13): the `join` class budgeted by the hour, the day
//! and the number's age; WhatsApp's push-back as escalating strikes; working hours and a
//! careful person's pace for jobs. Pure: the session object hands it the session's
//! settings, the times of its counted calls and strikes, and the clock.

pub mod settings;
