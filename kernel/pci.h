// PCI configuration space through the legacy ports 0xCF8/0xCFC (type 1
// mechanism): enough to find a device by vendor and device id, read its
// BARs and let it decode I/O and master DMA. No PCIe ECAM: QEMU's `pc`
// machine has none, and a port read is all a probe at boot needs.
#ifndef PCI_H
#define PCI_H
#include <stdbool.h>
#include <stdint.h>

struct pci_dev {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
};

#define PCI_CFG_COMMAND    0x04
#define PCI_CFG_BAR0       0x10
#define PCI_CFG_SUBSYS_ID  0x2e

#define PCI_CMD_IO         0x1      // decode its I/O BARs
#define PCI_CMD_MEM        0x2
#define PCI_CMD_MASTER     0x4      // let it read and write RAM (DMA)

uint32_t pci_read32(const struct pci_dev *d, uint8_t off);
uint16_t pci_read16(const struct pci_dev *d, uint8_t off);
void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v);

// The first function with this vendor and device id on bus 0 or behind a
// PCI-to-PCI bridge; false when there is none.
bool pci_find(uint16_t vendor, uint16_t device, struct pci_dev *out);

// BAR n as an I/O port base; 0 when it is not an assigned I/O BAR.
uint16_t pci_io_bar(const struct pci_dev *d, int n);
#endif
