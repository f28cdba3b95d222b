//! The declared cells of one table, by address: a vector kept sorted, so that the cells a
//! request spans are two binary searches and one slice.
//!
//! Every read on every port walks a span of a table, and a `BTreeMap`'s range search was the
//! largest single cost of a ten-register read (see `docs/performance.md`, "Modbus"). Maps are
//! declared once and read many times; a declaration out of address order costs a move of the
//! cells after it, which a config's own overlap checks already exceed.

/// Cells of type `V` at sparse addresses, in address order: the addresses apart from the
/// cells, so that the binary search over a table of ten runs through one cache line.
#[derive(Clone, Debug)]
pub(super) struct Sparse<V> {
    addresses: Vec<u16>,
    cells: Vec<V>,
}

impl<V> Default for Sparse<V> {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            cells: Vec::new(),
        }
    }
}

impl<V> Sparse<V> {
    /// Declare (or overwrite) the cell at `address`.
    pub(super) fn insert(&mut self, address: u16, value: V) {
        match self.addresses.binary_search(&address) {
            Ok(i) => self.cells[i] = value,
            Err(i) => {
                self.addresses.insert(i, address);
                self.cells.insert(i, value);
            }
        }
    }

    /// Declare (or overwrite) consecutive cells from `start`: the cells in their span are
    /// replaced in one move. Values past address 65535 are dropped (callers refuse them first).
    pub(super) fn insert_run(&mut self, start: u16, values: impl IntoIterator<Item = V>) {
        let (addresses, cells): (Vec<u16>, Vec<V>) = (u32::from(start)..)
            .map_while(|a| u16::try_from(a).ok())
            .zip(values)
            .unzip();
        let Some(&end) = addresses.last() else {
            return;
        };
        let span = self.span(start, end);
        self.addresses.splice(span.clone(), addresses);
        self.cells.splice(span, cells);
    }

    /// The cell at `address`.
    pub(super) fn get(&self, address: u16) -> Option<&V> {
        let i = self.addresses.binary_search(&address).ok()?;
        self.cells.get(i)
    }

    /// The cell at `address`, to change.
    pub(super) fn get_mut(&mut self, address: u16) -> Option<&mut V> {
        let i = self.addresses.binary_search(&address).ok()?;
        self.cells.get_mut(i)
    }

    /// The indices of the cells from `start` to `end` (inclusive).
    fn span(&self, start: u16, end: u16) -> std::ops::Range<usize> {
        let from = self.addresses.partition_point(|&a| a < start);
        let to = from + self.addresses[from..].partition_point(|&a| a <= end);
        from..to
    }

    /// How many cells are declared from `start` to `end` (inclusive).
    pub(super) fn count(&self, start: u16, end: u16) -> usize {
        self.span(start, end).len()
    }

    /// The cells from `start` to `end` (inclusive), with their addresses, in address order.
    pub(super) fn range(&self, start: u16, end: u16) -> impl Iterator<Item = (u16, &V)> {
        let span = self.span(start, end);
        self.addresses[span.clone()]
            .iter()
            .copied()
            .zip(&self.cells[span])
    }

    /// The cells from `start` to `end` (inclusive), to change.
    pub(super) fn range_mut(
        &mut self,
        start: u16,
        end: u16,
    ) -> impl Iterator<Item = (u16, &mut V)> {
        let span = self.span(start, end);
        self.addresses[span.clone()]
            .iter()
            .copied()
            .zip(&mut self.cells[span])
    }

    /// The lowest and highest declared addresses.
    pub(super) fn bounds(&self) -> Option<(u16, u16)> {
        Some((*self.addresses.first()?, *self.addresses.last()?))
    }
}

#[cfg(test)]
mod tests {
    use super::Sparse;

    fn all<V: Copy>(sparse: &Sparse<V>, start: u16, end: u16) -> Vec<(u16, V)> {
        sparse.range(start, end).map(|(a, v)| (a, *v)).collect()
    }

    #[test]
    fn keeps_address_order_whatever_the_order_of_declaration() {
        let mut sparse = Sparse::default();
        for address in [7_u16, 2, 9, 2, 0, 65535] {
            sparse.insert(address, u32::from(address) * 10);
        }
        sparse.insert(9, 1);
        let addresses: Vec<u16> = sparse.range(0, 65535).map(|(a, _)| a).collect();
        assert_eq!(addresses, [0, 2, 7, 9, 65535]);
        assert_eq!(sparse.get(9), Some(&1));
        assert_eq!(sparse.get(3), None);
        assert_eq!(sparse.bounds(), Some((0, 65535)));
        assert_eq!(all(&sparse, 3, 8), [(7, 70)]);
        assert_eq!(sparse.count(3, 8), 1);
        assert_eq!(sparse.count(3, 6), 0);
        assert_eq!(sparse.count(8, 3), 0);
    }

    #[test]
    fn a_run_replaces_the_cells_in_its_span_only() {
        let mut sparse = Sparse::default();
        for address in [1_u16, 3, 5, 8] {
            sparse.insert(address, 0);
        }
        sparse.insert_run(2, [20, 30, 40, 50]);
        assert_eq!(
            all(&sparse, 0, 100),
            [(1, 0), (2, 20), (3, 30), (4, 40), (5, 50), (8, 0)]
        );
        sparse.insert_run(65534, [1, 2, 3]);
        assert_eq!(all(&sparse, 65530, 65535), [(65534, 1), (65535, 2)]);
        sparse.insert_run(10, std::iter::empty());
        assert_eq!(sparse.count(9, 11), 0);
    }

    #[test]
    fn agrees_with_a_btree_map_on_random_declarations_and_spans() {
        let mut rng = fastrand::Rng::with_seed(18);
        for _ in 0..200 {
            let mut sparse = Sparse::<u32>::default();
            let mut model = std::collections::BTreeMap::new();
            for _ in 0..rng.usize(0..40) {
                let start = rng.u16(0..80);
                if rng.bool() {
                    let value = rng.u32(..);
                    sparse.insert(start, value);
                    model.insert(start, value);
                } else {
                    let values: Vec<u32> = (0..rng.usize(0..6)).map(|_| rng.u32(..)).collect();
                    sparse.insert_run(start, values.iter().copied());
                    for (address, value) in (start..).zip(&values) {
                        model.insert(address, *value);
                    }
                }
            }
            for _ in 0..20 {
                let (start, end) = (rng.u16(0..90), rng.u16(0..90));
                let expected: Vec<(u16, u32)> = if start <= end {
                    model.range(start..=end).map(|(a, v)| (*a, *v)).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(all(&sparse, start, end), expected);
                assert_eq!(sparse.count(start, end), expected.len());
            }
        }
    }
}
