//! The registers of the SDM630 and SDM120, as the `sdm-modbus` 0.7.0 client reads them
//! (`sdm_modbus/sdm.py`, its `registers` tables): every address, and float32 in ABCD order
//! for all but the serial number (a u32). The tables below were generated from those tables,
//! so their addresses and names are the client's own; each input register is bound to the
//! plant quantity its name says.
//!
//! Two meanings are taken from Eastron's register list over sdm-modbus' labels: 0x0054 and
//! 0x0056 of the SDM630 are the total system power demand and its maximum (in W; sdm-modbus
//! calls the second "apparent"), and 0x0030 and 0x0052 both hold the sum of the line currents.

use super::plant::Quantity;

/// How a holding register's value is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holding {
    /// float32, ABCD.
    F32,
    /// u32, high word first.
    U32,
}

/// SDM630 input registers (FC 4), by address, as sdm-modbus names them; all float32 ABCD.
pub(super) const SDM630_INPUT: &[(u16, &str, Quantity)] = &[
    (0x0000, "l1_voltage", Quantity::Volts(0)),
    (0x0002, "l2_voltage", Quantity::Volts(1)),
    (0x0004, "l3_voltage", Quantity::Volts(2)),
    (0x0006, "l1_current", Quantity::Amps(0)),
    (0x0008, "l2_current", Quantity::Amps(1)),
    (0x000A, "l3_current", Quantity::Amps(2)),
    (0x000C, "l1_power_active", Quantity::Watts(0)),
    (0x000E, "l2_power_active", Quantity::Watts(1)),
    (0x0010, "l3_power_active", Quantity::Watts(2)),
    (0x0012, "l1_power_apparent", Quantity::VoltAmps(0)),
    (0x0014, "l2_power_apparent", Quantity::VoltAmps(1)),
    (0x0016, "l3_power_apparent", Quantity::VoltAmps(2)),
    (0x0018, "l1_power_reactive", Quantity::Vars(0)),
    (0x001A, "l2_power_reactive", Quantity::Vars(1)),
    (0x001C, "l3_power_reactive", Quantity::Vars(2)),
    (0x001E, "l1_power_factor", Quantity::PowerFactor(0)),
    (0x0020, "l2_power_factor", Quantity::PowerFactor(1)),
    (0x0022, "l3_power_factor", Quantity::PowerFactor(2)),
    (0x0024, "l1_phase_angle", Quantity::Angle(0)),
    (0x0026, "l2_phase_angle", Quantity::Angle(1)),
    (0x0028, "l3_phase_angle", Quantity::Angle(2)),
    (0x002A, "voltage_ln", Quantity::MeanVolts),
    (0x002E, "current_ln", Quantity::MeanAmps),
    (0x0030, "total_line_current", Quantity::SumAmps),
    (0x0034, "total_power_active", Quantity::TotalWatts),
    (0x0038, "total_power_apparent", Quantity::TotalVoltAmps),
    (0x003C, "total_power_reactive", Quantity::TotalVars),
    (0x003E, "total_power_factor", Quantity::TotalPowerFactor),
    (0x0042, "total_phase_angle", Quantity::TotalAngle),
    (0x0046, "frequency", Quantity::Hertz),
    (0x0048, "import_energy_active", Quantity::ImportKwh),
    (0x004A, "export_energy_active", Quantity::ExportKwh),
    (0x004C, "import_energy_reactive", Quantity::ImportKvarh),
    (0x004E, "export_energy_reactive", Quantity::ExportKvarh),
    (0x0050, "total_energy_apparent", Quantity::TotalKvah),
    (0x0052, "total_current", Quantity::SumAmps),
    (
        0x0054,
        "total_import_demand_power_active",
        Quantity::TotalDemandWatts,
    ),
    (
        0x0056,
        "maximum_import_demand_power_apparent",
        Quantity::MaxTotalDemandWatts,
    ),
    (
        0x0058,
        "import_demand_power_active",
        Quantity::ImportDemandWatts,
    ),
    (
        0x005A,
        "maximum_import_demand_power_active",
        Quantity::MaxImportDemandWatts,
    ),
    (
        0x005C,
        "export_demand_power_active",
        Quantity::ExportDemandWatts,
    ),
    (
        0x005E,
        "maximum_export_demand_power_active",
        Quantity::MaxExportDemandWatts,
    ),
    (
        0x0064,
        "total_demand_power_apparent",
        Quantity::DemandVoltAmps,
    ),
    (
        0x0066,
        "maximum_demand_power_apparent",
        Quantity::MaxDemandVoltAmps,
    ),
    (
        0x0068,
        "neutral_demand_current",
        Quantity::NeutralDemandAmps,
    ),
    (
        0x006A,
        "maximum_neutral_demand_current",
        Quantity::MaxNeutralDemandAmps,
    ),
    (0x00C8, "l12_voltage", Quantity::LineVolts(0)),
    (0x00CA, "l23_voltage", Quantity::LineVolts(1)),
    (0x00CC, "l31_voltage", Quantity::LineVolts(2)),
    (0x00CE, "voltage_ll", Quantity::MeanLineVolts),
    (0x00E0, "neutral_current", Quantity::NeutralAmps),
    (0x00EA, "l1n_voltage_thd", Quantity::VoltsThd(0)),
    (0x00EC, "l2n_voltage_thd", Quantity::VoltsThd(1)),
    (0x00EE, "l3n_voltage_thd", Quantity::VoltsThd(2)),
    (0x00F0, "l1_current_thd", Quantity::AmpsThd(0)),
    (0x00F2, "l2_current_thd", Quantity::AmpsThd(1)),
    (0x00F4, "l3_current_thd", Quantity::AmpsThd(2)),
    (0x00F8, "voltage_ln_thd", Quantity::MeanVoltsThd),
    (0x00FA, "current_thd", Quantity::MeanAmpsThd),
    (0x00FE, "total_pf", Quantity::TotalPowerFactor),
    (0x0102, "l1_demand_current", Quantity::DemandAmps(0)),
    (0x0104, "l2_demand_current", Quantity::DemandAmps(1)),
    (0x0106, "l3_demand_current", Quantity::DemandAmps(2)),
    (
        0x0108,
        "maximum_l1_demand_current",
        Quantity::MaxDemandAmps(0),
    ),
    (
        0x010A,
        "maximum_l2_demand_current",
        Quantity::MaxDemandAmps(1),
    ),
    (
        0x010C,
        "maximum_l3_demand_current",
        Quantity::MaxDemandAmps(2),
    ),
    (0x014E, "l12_voltage_thd", Quantity::LineVoltsThd(0)),
    (0x0150, "l23_voltage_thd", Quantity::LineVoltsThd(1)),
    (0x0152, "l31_voltage_thd", Quantity::LineVoltsThd(2)),
    (0x0154, "voltage_ll_thd", Quantity::MeanLineVoltsThd),
    (0x0156, "total_energy_active", Quantity::TotalKwh),
    (0x0158, "total_energy_reactive", Quantity::TotalKvarh),
    (
        0x015A,
        "l1_import_energy_active",
        Quantity::PhaseImportKwh(0),
    ),
    (
        0x015C,
        "l2_import_energy_active",
        Quantity::PhaseImportKwh(1),
    ),
    (
        0x015E,
        "l3_import_energy_active",
        Quantity::PhaseImportKwh(2),
    ),
    (
        0x0160,
        "l1_export_energy_active",
        Quantity::PhaseExportKwh(0),
    ),
    (
        0x0162,
        "l2_export_energy_active",
        Quantity::PhaseExportKwh(1),
    ),
    (
        0x0164,
        "l3_export_energy_active",
        Quantity::PhaseExportKwh(2),
    ),
    (0x0166, "l1_energy_active", Quantity::PhaseKwh(0)),
    (0x0168, "l2_energy_active", Quantity::PhaseKwh(1)),
    (0x016A, "l3_energy_active", Quantity::PhaseKwh(2)),
    (
        0x016C,
        "l1_import_energy_reactive",
        Quantity::PhaseImportKvarh(0),
    ),
    (
        0x016E,
        "l2_import_energy_reactive",
        Quantity::PhaseImportKvarh(1),
    ),
    (
        0x0170,
        "l3_import_energy_reactive",
        Quantity::PhaseImportKvarh(2),
    ),
    (
        0x0172,
        "l1_export_energy_reactive",
        Quantity::PhaseExportKvarh(0),
    ),
    (
        0x0174,
        "l2_export_energy_reactive",
        Quantity::PhaseExportKvarh(1),
    ),
    (
        0x0176,
        "l3_export_energy_reactive",
        Quantity::PhaseExportKvarh(2),
    ),
    (0x0178, "l1_energy_reactive", Quantity::PhaseKvarh(0)),
    (0x017A, "l2_energy_reactive", Quantity::PhaseKvarh(1)),
    (0x017C, "l3_energy_reactive", Quantity::PhaseKvarh(2)),
];
/// SDM630 holding registers (FC 3, written with FC 16), by address, as sdm-modbus names them.
pub(super) const SDM630_HOLDING: &[(u16, &str, Holding)] = &[
    (0x0000, "demand_time", Holding::F32),
    (0x0002, "demand_period", Holding::F32),
    (0x0006, "system_voltage", Holding::F32),
    (0x0008, "system_current", Holding::F32),
    (0x000A, "system_type", Holding::F32),
    (0x000C, "relay_pulse_width", Holding::F32),
    (0x0012, "network_parity_stop", Holding::F32),
    (0x0014, "meter_id", Holding::F32),
    (0x001C, "baud", Holding::F32),
    (0x0024, "system_power", Holding::F32),
    (0xF910, "p1_divisor", Holding::F32),
    (0xFC00, "serial_number", Holding::U32),
];
/// SDM120 input registers (FC 4), by address, as sdm-modbus names them; all float32 ABCD.
pub(super) const SDM120_INPUT: &[(u16, &str, Quantity)] = &[
    (0x0000, "voltage", Quantity::Volts(0)),
    (0x0006, "current", Quantity::Amps(0)),
    (0x000C, "power_active", Quantity::Watts(0)),
    (0x0012, "power_apparent", Quantity::VoltAmps(0)),
    (0x0018, "power_reactive", Quantity::Vars(0)),
    (0x001E, "power_factor", Quantity::PowerFactor(0)),
    (0x0024, "phase_angle", Quantity::Angle(0)),
    (0x0046, "frequency", Quantity::Hertz),
    (0x0048, "import_energy_active", Quantity::ImportKwh),
    (0x004A, "export_energy_active", Quantity::ExportKwh),
    (0x004C, "import_energy_reactive", Quantity::ImportKvarh),
    (0x004E, "export_energy_reactive", Quantity::ExportKvarh),
    (
        0x0054,
        "total_demand_power_active",
        Quantity::TotalDemandWatts,
    ),
    (
        0x0056,
        "maximum_total_demand_power_active",
        Quantity::MaxTotalDemandWatts,
    ),
    (
        0x0058,
        "import_demand_power_active",
        Quantity::ImportDemandWatts,
    ),
    (
        0x005A,
        "maximum_import_demand_power_active",
        Quantity::MaxImportDemandWatts,
    ),
    (
        0x005C,
        "export_demand_power_active",
        Quantity::ExportDemandWatts,
    ),
    (
        0x005E,
        "maximum_export_demand_power_active",
        Quantity::MaxExportDemandWatts,
    ),
    (0x0102, "total_demand_current", Quantity::DemandAmps(0)),
    (
        0x0108,
        "maximum_total_demand_current",
        Quantity::MaxDemandAmps(0),
    ),
    (0x0156, "total_energy_active", Quantity::TotalKwh),
    (0x0158, "total_energy_reactive", Quantity::TotalKvarh),
];
/// SDM120 holding registers (FC 3, written with FC 16), by address, as sdm-modbus names them.
pub(super) const SDM120_HOLDING: &[(u16, &str, Holding)] = &[
    (0x0000, "demand_time", Holding::F32),
    (0x0002, "demand_period", Holding::F32),
    (0x000C, "relay_pulse_width", Holding::F32),
    (0x0012, "network_parity_stop", Holding::F32),
    (0x0014, "meter_id", Holding::F32),
    (0x001C, "baud", Holding::F32),
    (0x0056, "p1_output_mode", Holding::F32),
    (0xF900, "display_scroll_timing", Holding::F32),
    (0xF910, "p1_divisor", Holding::F32),
    (0xF920, "measurement_mode", Holding::F32),
    (0xF930, "indicator_mode", Holding::F32),
    (0xFC00, "serial_number", Holding::U32),
    (0xFC03, "software_version", Holding::F32),
];
