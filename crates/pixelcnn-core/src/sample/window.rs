//! The latest rows of a map, for the incremental samplers.
//!
//! Every layer of the Gated and PixelCNN++ networks reads its input at its
//! output's row and a fixed number of rows above, so a sampler that computes
//! rows in order needs only that many of each map, not the whole image: a
//! window whose last slot holds the newest row. Keeping whole images cost the
//! PixelCNN++ sampler 173 MB per plan for `pixelcnn++-small` at 32 images
//! (0.1 s to page in and zero, before its threads start) against about 10 MB
//! now (computed: two rows of 33 for each map).
//!
//! Rows arrive in order: making row i + 1 the newest shifts every slot back
//! by one. The new last slot still holds the row before it until written;
//! the samplers read only positions already written there. Rows above the
//! image are the window's first state: zeros, the convolutions' padding.

use crate::error::{Error, Result};
use std::cell::Cell;
use tch::{Device, Kind, Tensor};

pub(super) struct Window {
    /// The rows along `dim`, oldest first, with the map's other dimensions
    /// (padding columns included) as the caller laid them out.
    pub slots: Tensor,
    dim: i64,
    newest: Cell<i64>,
}

impl Window {
    /// `shape` with `shape[dim]` the number of rows kept, all zero, the
    /// newest being row −1.
    pub fn zeros(shape: &[i64], dim: usize, kind: Kind, device: Device) -> Result<Self> {
        Ok(Window { slots: Tensor::f_zeros(shape, (kind, device))?, dim: dim as i64, newest: Cell::new(-1) })
    }

    fn len(&self) -> i64 {
        self.slots.size()[self.dim as usize]
    }

    /// The slot holding `row`, which must be one of the rows kept.
    pub fn slot(&self, row: i64) -> Result<i64> {
        let back = self.newest.get() - row;
        if !(0..self.len()).contains(&back) {
            return Err(Error::Internal(format!("a sampler read row {row} of a window of {} rows up to {}", self.len(), self.newest.get())));
        }
        Ok(self.len() - 1 - back)
    }

    /// Rows first … first + n − 1.
    pub fn rows(&self, first: i64, n: i64) -> Result<Tensor> {
        self.slot(first + n - 1)?;
        Ok(self.slots.f_narrow(self.dim, self.slot(first)?, n)?)
    }

    /// Row `row`, without its dimension.
    pub fn row(&self, row: i64) -> Result<Tensor> {
        Ok(self.slots.f_select(self.dim, self.slot(row)?)?)
    }

    /// Makes `row` the newest (from the newest or the one before it).
    pub fn advance_to(&self, row: i64) -> Result<()> {
        if row == self.newest.get() + 1 {
            // Slot by slot, oldest first: the copies never overlap.
            for s in 0..self.len() - 1 {
                self.slots.f_select(self.dim, s)?.f_copy_(&self.slots.f_select(self.dim, s + 1)?)?;
            }
            self.newest.set(row);
        }
        self.slot(row).map(drop)
    }
}
