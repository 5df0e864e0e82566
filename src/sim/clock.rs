//! Simulated time: `sim = real elapsed / time_scale`.
//!
//! The engine never reads the clock while it processes events: each event
//! carries the simulated instant it was scheduled for, so a run's timing is
//! the same however late the engine task wakes up. Only requests (and the
//! engine's wake-ups) read [`Clock::now`], which decides "how far the world
//! has advanced" when a request is applied.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub(crate) struct Clock {
    origin: Instant,
    /// Real seconds per simulated second.
    scale: f64,
    /// Unix time of simulated second 0.
    epoch_unix: i64,
}

impl Clock {
    pub(crate) fn new(scale: f64, epoch: Option<i64>) -> Clock {
        let epoch_unix = epoch.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        Clock {
            origin: Instant::now(),
            scale,
            epoch_unix,
        }
    }

    /// Simulated seconds since the server started.
    pub(crate) fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() / self.scale
    }

    /// The real instant at which simulated time `t` is reached.
    pub(crate) fn instant_for(&self, t: f64) -> Instant {
        let real = (t * self.scale).clamp(0.0, 1.0e9);
        self.origin + Duration::from_secs_f64(real)
    }

    /// Unix time (whole seconds) of simulated time `t`.
    pub(crate) fn unix(&self, t: f64) -> i64 {
        self.epoch_unix + t.floor() as i64
    }
}

/// `YYYYMMDDhhmmss` in UTC (`Cpanel::Time::time2condensedtime`).
pub(crate) fn condensed_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `Whostmgr/DateTime.pm::format_date` in UTC: `YY Mon DD hh:mm`.
pub(crate) fn format_date(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{:02} {} {d:02} {:02}:{:02}",
        y % 100,
        MONTHS[(m - 1) as usize],
        secs / 3600,
        (secs / 60) % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condensed_time_matches_the_documented_example() {
        // remoteexamplecopya20140211211719FxjU (api.docs.cpanel.net)
        assert_eq!(condensed_utc(1_392_153_439), "20140211211719");
        assert_eq!(condensed_utc(0), "19700101000000");
        assert_eq!(format_date(1_392_153_439), "14 Feb 11 21:17");
    }

    #[test]
    fn time_scale_maps_real_to_simulated() {
        let c = Clock::new(0.001, Some(0));
        let at = c.instant_for(1000.0);
        assert!(at.duration_since(c.origin) == Duration::from_secs(1));
        assert_eq!(c.unix(12.7), 12);
    }
}
