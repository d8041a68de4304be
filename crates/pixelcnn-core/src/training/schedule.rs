//! Learning-rate schedules: the rate of a step is a pure function of the
//! optimizer's global step count (saved with Adam's state), so a resumed run
//! takes exactly the rates an uninterrupted one would.
//!
//! With base rate η and t = 1, 2, … the step being taken:
//! - constant: η (the default; the seed's training is unchanged);
//! - exponential: η · decay^(t−1), PixelCNN++'s per-step decay (openai's
//!   code multiplies the rate by `lr_decay` after every step);
//! - step: η · factor^⌊(t−1)/every⌋;
//! - cosine: η · t/warmup while t ≤ warmup, then
//!   η_min + (η − η_min) · ½(1 + cos(π · (t − warmup)/(total − warmup))),
//!   reaching η_min at t = total and staying there.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Schedule {
    #[default]
    Constant,
    #[serde(rename_all = "camelCase")]
    Exponential { decay: f64 },
    #[serde(rename_all = "camelCase")]
    Step { every: i64, factor: f64 },
    /// `total_steps`: the step at which the decay ends; `None`: the last
    /// step of the `fit` that starts the schedule (resolved then, see
    /// `Schedule::resolved`).
    #[serde(rename_all = "camelCase")]
    Cosine {
        warmup_steps: i64,
        #[serde(default)]
        total_steps: Option<i64>,
        #[serde(default)]
        min_learning_rate: f64,
    },
}

impl Schedule {
    /// The rate of global step `t` (1-based) for base rate `base`.
    pub fn rate(&self, base: f64, t: i64) -> f64 {
        let t = t.max(1);
        match *self {
            Schedule::Constant => base,
            Schedule::Exponential { decay } => base * decay.powf((t - 1) as f64),
            Schedule::Step { every, factor } => base * factor.powi(((t - 1) / every) as i32),
            Schedule::Cosine { warmup_steps, total_steps, min_learning_rate } => {
                if t <= warmup_steps {
                    return base * t as f64 / warmup_steps as f64;
                }
                let total = total_steps.unwrap_or(t).max(warmup_steps + 1);
                let progress = ((t - warmup_steps) as f64 / (total - warmup_steps) as f64).min(1.0);
                min_learning_rate + (base - min_learning_rate) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// Range checks that need no knowledge of the run. `base`: the base rate.
    pub fn validate(&self, base: f64) -> Result<()> {
        let bad = |field: &str, message: String| Err(Error::config(&format!("schedule.{field}"), message));
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Exponential { decay } | Schedule::Step { factor: decay, .. } if !(decay > 0.0 && decay <= 1.0) => {
                let field = if matches!(self, Schedule::Exponential { .. }) { "decay" } else { "factor" };
                bad(field, format!("must be in (0, 1], got {decay}"))
            }
            Schedule::Step { every, .. } if every < 1 => bad("every", format!("must be a positive number of steps, got {every}")),
            Schedule::Cosine { warmup_steps, .. } if warmup_steps < 0 => bad("warmupSteps", format!("must be 0 or more, got {warmup_steps}")),
            Schedule::Cosine { total_steps: Some(total), .. } if total < 1 => bad("totalSteps", format!("must be a positive number of steps, got {total}")),
            Schedule::Cosine { min_learning_rate, .. } if !(min_learning_rate >= 0.0 && min_learning_rate <= base) => {
                bad("minLearningRate", format!("must be between 0 and learningRate ({base}), got {min_learning_rate}"))
            }
            _ => Ok(()),
        }
    }

    /// The schedule with its open end fixed: a cosine schedule without
    /// `totalSteps` ends at `last_step`, the final step of this `fit`.
    /// Refuses a warm-up that does not end before the schedule does.
    pub fn resolved(&self, last_step: i64) -> Result<Schedule> {
        match *self {
            Schedule::Cosine { warmup_steps, total_steps, min_learning_rate } => {
                let total = total_steps.unwrap_or(last_step);
                if warmup_steps >= total {
                    return Err(Error::config(
                        "schedule.warmupSteps",
                        format!("must be shorter than the training it warms up ({total} steps), got {warmup_steps}"),
                    ));
                }
                Ok(Schedule::Cosine { warmup_steps, total_steps: Some(total), min_learning_rate })
            }
            ref other => Ok(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_formulas() {
        assert_eq!(Schedule::Constant.rate(1e-3, 1000), 1e-3);
        let e = Schedule::Exponential { decay: 0.5 };
        assert_eq!((e.rate(1.0, 1), e.rate(1.0, 3)), (1.0, 0.25));
        let s = Schedule::Step { every: 2, factor: 0.1 };
        assert_eq!([1, 2, 3].map(|t| s.rate(1.0, t)), [1.0, 1.0, 0.1]);
        let c = Schedule::Cosine { warmup_steps: 2, total_steps: Some(6), min_learning_rate: 0.0 };
        assert_eq!(c.rate(1.0, 1), 0.5);
        assert_eq!(c.rate(1.0, 2), 1.0);
        assert!((c.rate(1.0, 4) - 0.5).abs() < 1e-12);
        assert!(c.rate(1.0, 6).abs() < 1e-12 && c.rate(1.0, 9).abs() < 1e-12);
    }

    #[test]
    fn bad_values_name_their_field() {
        let err = Schedule::Exponential { decay: 1.5 }.validate(1e-3).unwrap_err().to_string();
        assert!(err.contains("schedule.decay") && err.contains("1.5"), "{err}");
        let err = Schedule::Cosine { warmup_steps: 10, total_steps: None, min_learning_rate: 0.0 }.resolved(10).unwrap_err().to_string();
        assert!(err.contains("schedule.warmupSteps") && err.contains("10"), "{err}");
    }
}
