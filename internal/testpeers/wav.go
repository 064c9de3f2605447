package testpeers

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// WriteToneWAV writes a 16-bit mono PCM WAV file holding a sine tone of freq Hz at amplitude
// (0..1 of full scale) for seconds, sampled at rate Hz.
func WriteToneWAV(path string, rate int, freq, amplitude, seconds float64) error {
	n := int(float64(rate) * seconds)
	samples := make([]int16, n)
	for i := range samples {
		samples[i] = int16(amplitude * 32767 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return WriteWAV(path, rate, samples)
}

// WriteWAV writes samples as a 16-bit mono PCM WAV file.
func WriteWAV(path string, rate int, samples []int16) error {
	data := make([]byte, 44+2*len(samples))
	copy(data[0:], "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*len(samples)))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1) // PCM
	binary.LittleEndian.PutUint16(data[22:], 1) // mono
	binary.LittleEndian.PutUint32(data[24:], uint32(rate))
	binary.LittleEndian.PutUint32(data[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*len(samples)))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(s))
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("testpeers: %w", err)
	}
	return nil
}

// ReadWAV reads a 16-bit PCM WAV file and returns its first channel and sample rate.
func ReadWAV(path string) (samples []int16, rate int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("testpeers: %w", err)
	}
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("testpeers: %s: not a RIFF/WAVE file", path)
	}
	var channels, bits int
	for off := 12; off+8 <= len(data); {
		id := string(data[off : off+4])
		size := int(binary.LittleEndian.Uint32(data[off+4:]))
		body := data[off+8:]
		if size > len(body) || size < 0 {
			size = len(body) // files still being written may carry a stale size
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, 0, fmt.Errorf("testpeers: %s: short fmt chunk", path)
			}
			if f := binary.LittleEndian.Uint16(body[0:]); f != 1 && f != 0xFFFE {
				return nil, 0, fmt.Errorf("testpeers: %s: format %d is not PCM", path, f)
			}
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			bits = int(binary.LittleEndian.Uint16(body[14:]))
		case "data":
			if channels == 0 || bits != 16 {
				return nil, 0, fmt.Errorf("testpeers: %s: need 16-bit PCM before data (channels %d, bits %d)", path, channels, bits)
			}
			frames := size / (2 * channels)
			samples = make([]int16, frames)
			for i := range samples {
				samples[i] = int16(binary.LittleEndian.Uint16(body[2*channels*i:]))
			}
			return samples, rate, nil
		}
		off += 8 + size + size&1
	}
	return nil, 0, fmt.Errorf("testpeers: %s: no data chunk", path)
}

// ToneRatio returns the fraction (0..1) of the signal's power that lies at freq Hz, measured
// with the Goertzel algorithm over all samples. A clean tone gives nearly 1, silence or another
// tone nearly 0.
func ToneRatio(samples []int16, rate int, freq float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2, energy float64
	for _, v := range samples {
		x := float64(v)
		energy += x * x
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	if energy == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2 // |X(f)|^2
	n := float64(len(samples))
	// A sine of amplitude A gives |X|^2 = (A*N/2)^2 and energy N*A^2/2: the ratio is 2|X|^2/(N*energy).
	return 2 * power / (n * energy)
}

// RMS returns the root mean square of samples in full-scale units (0..1).
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, v := range samples {
		x := float64(v) / 32768
		sum += x * x
	}
	return math.Sqrt(sum / float64(len(samples)))
}
