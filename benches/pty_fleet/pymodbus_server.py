# pymodbus's own serial server for the pty_fleet bench's Modbus rows: unit 1 with holding
# registers 0-9 holding 1..10, RTU framing, on the pty slave given as argv[1] (the bench writes
# requests into its master). pymodbus 3.16's SimDevice API, the one its docs recommend.
import logging
import sys

from pymodbus import FramerType
from pymodbus.server import StartSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

logging.disable(logging.CRITICAL)
device = SimDevice(
    id=1,
    simdata=[SimData(0, values=list(range(1, 11)), datatype=DataType.REGISTERS)],
)
print("ready", flush=True)
StartSerialServer(device, framer=FramerType.RTU, port=sys.argv[1], baudrate=19200)
